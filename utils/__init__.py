"""Everything below the control models, in packages by domain. Nothing here imports `model`,
`control_models` or `_wsgi`.

- `service/`: settings, errors, files and locks, caches, metrics, jobs, the model and annotation stores.
- `labelstudio/`: credentials, the API client, media access, annotations -> training tasks.
- `temporal/`: what video and time series share: the temporal nets, their training, the segment decoder.
- `video/`: decoding, frame timing, the YOLO encoder, frame features and their cache, timeline regions.
- `timeseries/`: CSV / JSON reading, the time axis, time-series regions.
"""
