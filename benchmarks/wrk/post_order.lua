-- POST /orders with a realistic JSON body (benchmarks/apps/bench_app.py).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customer_id": 42, "currency": "EUR", "note": "leave at the door", "lines": [' ..
  '{"sku": "sku-1", "quantity": 2, "price_cents": 1250},' ..
  '{"sku": "sku-7", "quantity": 1, "price_cents": 4990},' ..
  '{"sku": "sku-9", "quantity": 3, "price_cents": 720}]}'
