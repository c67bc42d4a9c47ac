// t/openapi/check.mjs FILE: validates an OpenAPI document with
// @seriousme/openapi-schema-validator (the JSON Schemas the OpenAPI
// Initiative publishes) and prints one JSON object: {valid, version,
// errors, operations: ["GET /api/v1/me", ...]}.  Used by t/17-openapi.t.
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
console.log(JSON.stringify({
	valid: result.valid,
	version: validator.version,
	errors: result.errors ?? null,
	operations: operations.sort(),
}));
