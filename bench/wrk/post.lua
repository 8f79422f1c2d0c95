-- wrk script: every request is a POST with an empty body (bench/redis_floor.py).
wrk.method = "POST"
wrk.body = ""
wrk.headers["Content-Length"] = "0"
