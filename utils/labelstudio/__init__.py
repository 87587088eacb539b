"""Talking to Label Studio: credentials, the API client, media access, annotations -> training tasks.
May import `utils.service`; never `video`, `timeseries` or `temporal`."""
