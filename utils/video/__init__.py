"""Video: decoding, frame timing, the YOLO frame encoder, frame features and their cache, timeline
regions. May import `utils.service` and `utils.temporal`; never `utils.timeseries`."""
