"""What video and time series share: the temporal nets, their training, and the one decoder from
per-step probabilities to segments. Pure numpy / torch; imports nothing else of `utils` but `service`."""
