"""Helpers that start real processes for the tests: redis-server, gunicorn, Chromium.

Nothing here mocks anything; every helper owns an OS process and cleans it up.
"""
