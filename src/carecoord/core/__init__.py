"""The bottom layer: the CloudEvent envelope, the effects vocabulary, the handler contract and
the event catalog. It imports nothing of carecoord but `carecoord.errors`."""
