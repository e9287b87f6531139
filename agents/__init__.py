"""The Faust application of Sharing Bus: app construction, one module per agent, web routes."""
