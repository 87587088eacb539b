"""Time series: CSV / JSON reading, the time axis, time-series regions. May import `utils.service` and
`utils.temporal`; never `utils.video`."""
