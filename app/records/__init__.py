"""What a run leaves, as plain data: traces, comparisons, checked values. No Qt, so any part can read them."""
