// api.js: a small client of tollgate's JSON API for a single-page app on
// another origin.  The page keeps the token pair in memory (not in
// localStorage, where any script on the page could read it) and sends
// the access token as Authorization: Bearer, so no cookie crosses sites.
// tollgate must list the page's origin in `server cors_origins`; it then
// answers the browser's preflights and adds Access-Control-Allow-Origin.
//
// It works the same in Node (the test suite runs it there): pass a fetch.

export function tollgate(base, fetchImpl = globalThis.fetch) {
	let tokens = null;

	async function call(method, path, body, auth = true) {
		const headers = {};
		if (body !== undefined) headers["Content-Type"] = "application/json";
		if (auth && tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
		let res = await fetchImpl(base + path, {
			method, headers,
			body: body === undefined ? undefined : JSON.stringify(body),
		});
		// An access token lives 15 minutes: refresh once and try again.
		if (res.status === 401 && auth && tokens) {
			const r = await fetchImpl(base + "/api/v1/auth/refresh", {
				method: "POST",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify({ refresh_token: tokens.refresh_token }),
			});
			if (r.ok) {
				tokens = (await r.json()).tokens;
				headers.Authorization = `Bearer ${tokens.access_token}`;
				res = await fetchImpl(base + path, {
					method, headers,
					body: body === undefined ? undefined : JSON.stringify(body),
				});
			}
		}
		const data = res.status === 204 ? null : await res.json();
		if (!res.ok) {
			const e = new Error(data?.error?.message ?? `HTTP ${res.status}`);
			e.status = res.status;
			e.code = data?.error?.code;
			throw e;
		}
		return data;
	}

	return {
		async login(email, password) {
			const r = await call("POST", "/api/v1/auth/login", { email, password }, false);
			tokens = r.tokens;
			return r.user;
		},
		async logout() {
			if (tokens) await call("POST", "/api/v1/auth/logout",
			    { refresh_token: tokens.refresh_token });
			tokens = null;
		},
		me: () => call("GET", "/api/v1/me"),
		usage: () => call("GET", "/api/v1/usage"),
		keys: () => call("GET", "/api/v1/api-keys"),
		createKey: (name) => call("POST", "/api/v1/api-keys", { name }),
		plans: () => call("GET", "/api/v1/plans", undefined, false),
		get signedIn() { return tokens !== null; },
	};
}
