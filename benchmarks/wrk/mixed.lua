-- Alternate GET / and GET /bg (an endpoint that queues a background task).
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/bg")
  end
  return wrk.format("GET", "/")
end
