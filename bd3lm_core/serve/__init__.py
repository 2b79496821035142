"""`bd3lm serve`: any model this project loads, behind OpenAI's chat and text completion API on localhost.

`requests.py` reads and checks a request body, `runner.py` runs one
generation at a time in a thread with a bounded line of waiting requests,
and `app.py` is the HTTP side (Starlette, an optional extra: nothing here
imports it until a server is built).
"""
