"""One ControlModel subclass per supported control tag."""
