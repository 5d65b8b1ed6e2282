-- wrk script of bench/direct.py: POST /api/v1/statuses with a form body, each request with the
-- next account's token (read from the file BENCH_TOKENS names, one a line) and a text of its own;
-- at the end, one line "BENCH {json}" with the counts and the latency percentiles.

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end

local n = 0

request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/api/v1/statuses", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "status=Benchmark+post+number+" .. n .. "+from+the+load+generator")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "seconds": %.3f}\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration / 1e6))
end
