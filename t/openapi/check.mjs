// t/openapi/check.mjs FILE [SAMPLES]: validates an OpenAPI document with
// @seriousme/openapi-schema-validator (the JSON Schemas the OpenAPI
// Initiative publishes) and prints one JSON object: {valid, version,
// errors, operations: ["GET /api/v1/me", ...], samples}.  With SAMPLES
// (a JSON file: [{method, path, status, body}], path as the document
// writes it), each real answer's body is checked against the schema the
// document gives for that operation and status (JSON Schema 2020-12, by
// ajv), and samples lists {method, path, status, ok, errors}.  Used by
// t/17-openapi.t.
// The modules come from TG_NODE_MODULES (contrib/devstack test installs
// them there with npm ci from t/openapi/package-lock.json).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.TG_NODE_MODULES;
const file = process.argv[2];
if (!modules || !file) {
	console.error("usage: TG_NODE_MODULES=DIR node check.mjs FILE");
	process.exit(2);
}
const load = (rel) => import(pathToFileURL(join(modules, rel)).href);
const { Validator } = await load("@seriousme/openapi-schema-validator/index.js");
const YAML = (await load("yaml/dist/index.js")).default;

const validator = new Validator();
const result = await validator.validate(file);
const doc = YAML.parse(readFileSync(file, "utf8"));
const methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const operations = [];
for (const [path, item] of Object.entries(doc.paths ?? {})) {
	for (const m of methods) {
		if (item && item[m]) operations.push(`${m.toUpperCase()} ${path}`);
	}
}
// Follows a local $ref ("#/components/...") inside the document.
const deref = (o) => {
	let seen = 0;
	while (o && typeof o.$ref === "string" && o.$ref.startsWith("#/") && seen++ < 10) {
		o = o.$ref.slice(2).split("/").reduce((x, k) =>
			x?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
	}
	return o;
};

let samples = null;
if (process.argv[3]) {
	const Ajv2020 = (await load("ajv/dist/2020.js")).default;
	const addFormats = (await load("ajv-formats/dist/index.js")).default;
	const ajv = new Ajv2020({ strict: false, allErrors: true });
	addFormats(ajv);
	// The whole document, so that the schemas' $refs resolve in it.
	ajv.addSchema({ ...doc, $id: "openapi.json" }, "openapi.json");
	const esc = (k) => k.replace(/~/g, "~0").replace(/\//g, "~1");
	samples = [];
	for (const sm of JSON.parse(readFileSync(process.argv[3], "utf8"))) {
		const r = { method: sm.method, path: sm.path, status: sm.status, ok: false, errors: null };
		const m = sm.method.toLowerCase();
		const resp = deref(doc.paths?.[sm.path]?.[m]?.responses?.[String(sm.status)]);
		if (!resp) {
			r.errors = "the document has no such response";
		} else if (!resp.content) {
			r.ok = sm.body === null || sm.body === undefined || sm.body === "";
			if (!r.ok) r.errors = "the document says there is no body";
		} else {
			// Where the schema sits: in the path item, or in components.
			let ptr;
			const raw = doc.paths[sm.path][m].responses[String(sm.status)];
			if (raw.$ref) ptr = raw.$ref.slice(1) + "/content/application~1json/schema";
			else ptr = `/paths/${esc(sm.path)}/${m}/responses/${sm.status}/content/application~1json/schema`;
			const check = ajv.compile({ $ref: "openapi.json#" + ptr });
			r.ok = check(sm.body);
			if (!r.ok) r.errors = check.errors;
		}
		samples.push(r);
	}
}

console.log(JSON.stringify({
	valid: result.valid,
	version: validator.version,
	errors: result.errors ?? null,
	operations: operations.sort(),
	samples,
}));
