-- wrk script: POST a chat completion with a Bearer key picked at random from a file.
--   wrk -s bench/post.lua URL -- KEYS_FILE [stream]
-- Prints one JSON line at the end (prefixed "BENCH ") with counts and latency percentiles (us).

local keys = {}
local body

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then keys[#keys + 1] = line end
  end
  local stream = args[2] == "stream" and ', "stream": true' or ''
  body = '{"model": "bench-model", "max_tokens": 10' .. stream ..
         ', "messages": [{"role": "user", "content": "Say hello to the benchmark, please."}]}'
  math.randomseed(os.time())
end

function request()
  local key = keys[math.random(#keys)]
  return wrk.format("POST", "/v1/chat/completions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
