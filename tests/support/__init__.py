"""Helpers that start real processes for the tests: redis-server, granian, gunicorn, Chromium.

Nothing here mocks anything; every helper owns an OS process and cleans it up.
"""
