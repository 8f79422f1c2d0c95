-- wrk script for the session benchmark.
--
--   wrk -t2 -c32 -d5s -s bench/wrk/session.lua http://127.0.0.1:PORT \
--       -- COOKIE_FILE METHOD PATH MAX_REQUESTS_PER_THREAD THREADS [STOP_MARKER]
--
-- COOKIE_FILE holds one Cookie header value per line ("session=abc..."); requests go
-- round-robin over them, each thread starting at its own offset. "-" (or an empty file)
-- sends no Cookie header at all: that is how sessions are created in bulk.
-- MAX_REQUESTS_PER_THREAD > 0 bounds the run by count as well as by -d: a thread stops
-- after that many requests (0 = bounded by time only). wrk itself still waits for -d to
-- pass, so a thread that stops writes STOP_MARKER<thread id> (when given): the runner
-- watches for one per thread and then ends wrk early with SIGINT, which still runs done().
-- done() prints one line "BENCH_JSON {...}" that the runner parses; latencies are in
-- microseconds, "status" counts responses with a status of 400 or more.

local thread_count = 0
local threads = {}

function setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

local reqs = {}
local n = 0
local idx = 0
local sent = 0
local max_requests = 0
local stop_marker = nil
local stopped = false

local function read_cookies(path)
   local cookies = {}
   if path == nil or path == "-" or path == "" then
      return cookies
   end
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      line = line:gsub("%s+$", "")
      if line ~= "" then
         table.insert(cookies, line)
      end
   end
   f:close()
   return cookies
end

function init(args)
   local cookies = read_cookies(args[1])
   local method = args[2] or "GET"
   local path = args[3] or "/"
   max_requests = tonumber(args[4] or "0") or 0
   local nthreads = tonumber(args[5] or "1") or 1
   if args[6] ~= nil and args[6] ~= "" then
      stop_marker = args[6]
   end
   -- POST gets an explicit empty body so that every request carries Content-Length: 0.
   local body = nil
   if method ~= "GET" and method ~= "HEAD" then
      body = ""
   end
   if #cookies == 0 then
      reqs[1] = wrk.format(method, path, {}, body)
   else
      for i, cookie in ipairs(cookies) do
         reqs[i] = wrk.format(method, path, { ["Cookie"] = cookie }, body)
      end
   end
   n = #reqs
   -- Spread the threads over the cookie list so that they do not walk it in lockstep.
   local id = tonumber(id) or 0
   idx = math.floor(id * n / nthreads) % n
end

function request()
   sent = sent + 1
   if max_requests > 0 and sent > max_requests and not stopped then
      stopped = true
      if stop_marker ~= nil then
         local f = io.open(stop_marker .. tostring(id), "w")
         if f ~= nil then
            f:write(tostring(sent - 1), "\n")
            f:close()
         end
      end
      wrk.thread:stop()
   end
   idx = idx % n + 1
   return reqs[idx]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
      '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},"threads":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), #threads))
end
