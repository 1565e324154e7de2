"""Call shapes of other SDKs over veriml, for code that moves over: `veriml.compat.opengradient`."""
