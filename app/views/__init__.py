"""The windows and widgets. They show records and send requests to the engine thread; no tensor math here."""
