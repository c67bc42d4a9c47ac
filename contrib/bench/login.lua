-- contrib/bench/login.lua: wrk script for contrib/bench/login.  Every
-- request is one JSON login of the bench user (BENCH_EMAIL and
-- BENCH_PASSWORD in the environment); answers other than 200 are counted
-- and reported, so a throttle or an error cannot pass for speed.

local email = os.getenv("BENCH_EMAIL")
local password = os.getenv("BENCH_PASSWORD")
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Forwarded-For"] = os.getenv("BENCH_ADDR") or "127.0.0.1"
wrk.body = string.format('{"email":"%s","password":"%s"}', email, password)

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	ok = 0
	bad = 0
end

function response(status, headers, body)
	if status == 200 then
		ok = ok + 1
	else
		bad = bad + 1
	end
end

function done(summary, latency, requests)
	local good, other = 0, 0
	for _, t in ipairs(threads) do
		good = good + t:get("ok")
		other = other + t:get("bad")
	end
	local secs = summary.duration / 1e6
	io.write(string.format("logins_ok %d\nother_answers %d\n", good, other))
	io.write(string.format("logins_per_second %.1f\n", good / secs))
	io.write(string.format("latency_p50_ms %.1f\nlatency_p99_ms %.1f\n",
	    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
