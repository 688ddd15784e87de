"""Operation traces: built after a traced job ends, shipped from the ops_trace queue."""
