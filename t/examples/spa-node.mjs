// Runs contrib/examples/spa/api.js in Node against the dev stack, as the
// page would from its origin: every request carries that Origin, and the
// Access-Control-Allow-Origin of every answer is recorded.  Prints one
// JSON object for t/16-examples.t.
//   node spa-node.mjs BASE ORIGIN EMAIL PASSWORD
// NODE_EXTRA_CA_CERTS names the dev stack's certificate.
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [base, origin, email, password] = process.argv.slice(2);
const root = process.env.TG_ROOT;
const { tollgate } = await import(pathToFileURL(join(root, "contrib/examples/spa/api.js")).href);

const seen = [];
const fetchFromPage = async (url, init = {}) => {
	const headers = { ...(init.headers ?? {}), Origin: origin };
	const res = await fetch(url, { ...init, headers });
	seen.push({ path: new URL(url).pathname, status: res.status,
		acao: res.headers.get("access-control-allow-origin") });
	return res;
};

const out = { seen };
try {
	const api = tollgate(base, fetchFromPage);
	out.user = await api.login(email, password);
	const me = await api.me();
	out.credits = me.trial.credits_remaining;
	out.meters = (await api.usage()).meters;
	const before = (await api.keys()).length;
	out.new_key = (await api.createKey("spa example")).key;
	out.keys_added = (await api.keys()).length - before;
	await api.logout();
	try {
		await api.me();
		out.after_logout = "still signed in";
	} catch (e) {
		out.after_logout = e.code ?? e.message;
	}
} catch (e) {
	out.error = `${e.status ?? ""} ${e.code ?? ""} ${e.message}`;
}
console.log(JSON.stringify(out));
