"""The web console at /console: server-rendered pages that hold no data, filled from the API."""
