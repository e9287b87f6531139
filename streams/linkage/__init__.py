"""Record linkage inside the bus: keyed linkage tokens and the incremental clusterer over them."""
