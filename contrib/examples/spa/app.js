// app.js: the page's glue: a login form, then the account, its usage and
// its keys, drawn with the DOM alone.  tollgate's URL comes from
// ?tollgate=URL (default https://127.0.0.1:8443, the dev stack).
import { tollgate } from "./api.js";

const base = new URLSearchParams(location.search).get("tollgate")
	?? "https://127.0.0.1:8443";
const api = tollgate(base.replace(/\/$/, ""));
const $ = (id) => document.getElementById(id);

function show(id, text) { $(id).textContent = text; }

async function refresh() {
	const me = await api.me();
	const usage = await api.usage();
	const keys = await api.keys();
	show("who", `${me.user.email} (${me.user.plan ?? "no plan"})`);
	show("credits", String(me.trial.credits_remaining));
	const rows = Object.entries(usage.meters).map(([name, m]) =>
		`${name}: ${m.used} of ${m.limit ?? "no limit"}`);
	show("meters", rows.join("\n"));
	show("keys", keys.map((k) => `${k.name} ${k.preview}…`).join("\n") || "none");
	$("account").hidden = false;
	$("login").hidden = true;
}

$("login").addEventListener("submit", async (ev) => {
	ev.preventDefault();
	show("error", "");
	try {
		await api.login($("email").value, $("password").value);
		await refresh();
	} catch (e) {
		show("error", e.message);
	}
});

$("newkey").addEventListener("click", async () => {
	try {
		const k = await api.createKey(`spa ${new Date().toISOString()}`);
		show("shown-key", `New key (shown once): ${k.key}`);
		await refresh();
	} catch (e) {
		show("error", e.message);
	}
});

$("logout").addEventListener("click", async () => {
	await api.logout();
	$("account").hidden = true;
	$("login").hidden = false;
});

show("base", base);
document.body.dataset.ready = "1";
