-- wrk script of the ingest benchmark (infra/bench/run.sh): Telegram webhook deliveries, each with a unique
-- update_id (a per-thread counter), from BENCH_CUSTOMERS distinct customers, with the channel's secret token.
-- Counts the responses by status per thread and prints one machine-readable line at the end ("BENCH_JSON").
--
-- The update id is also the message id: BENCH_UPDATE_BASE + thread number * 10^7 + the thread's counter, so
-- the ids each thread sent are one contiguous range, which verify_stored.py checks against what was stored.
--
-- Environment: BENCH_SECRET (X-Telegram-Bot-Api-Secret-Token), BENCH_UPDATE_BASE (a multiple of 10^8 below
-- 2*10^9, message ids are 32-bit; runs against one server need different bases), BENCH_CUSTOMERS (default 1000), BENCH_DELAY_MS (> 0:
-- every connection waits that long after each response, which holds the rate near connections*1000/delay).
-- The same script (and so the same requests) drives the bare axum baseline.

local threads = {}
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

function init(args)
   counter = 0
   statuses = {}
   base = tonumber(os.getenv("BENCH_UPDATE_BASE") or "100000000")
   customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "1000")
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("BENCH_SECRET") or ""
end

local template = '{"update_id":%d,"message":{"date":1441645532,"chat":{"last_name":"Test Lastname",'
   .. '"id":%d,"type":"private","first_name":"Test Firstname","username":"Testusername"},"message_id":%d,'
   .. '"from":{"last_name":"Test Lastname","id":%d,"first_name":"Test Firstname","username":"Testusername"},'
   .. '"text":"/start"}}'

function request()
   counter = counter + 1
   local update_id = base + thread_number * 10000000 + counter
   local customer = 100000 + (update_id % customers)
   local body = string.format(template, update_id, customer, update_id, customer)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

if delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

function done(summary, latency, requests)
   local total = {}
   local sent = {}
   for _, thread in ipairs(threads) do
      table.insert(sent, string.format('"%d":%d', thread:get("thread_number"), thread:get("counter")))
      for status, count in pairs(thread:get("statuses")) do
         total[status] = (total[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(total) do
      table.insert(parts, string.format('"%d":%d', status, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d},"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},'
         .. '"statuses":{%s},"base":%d,"sent_per_thread":{%s}}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, table.concat(parts, ","),
      tonumber(os.getenv("BENCH_UPDATE_BASE") or "100000000"), table.concat(sent, ",")))
end
