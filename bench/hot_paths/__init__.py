"""Issue 11's hot paths against the bare endpoint: `python -m bench.hot_paths --help`."""
