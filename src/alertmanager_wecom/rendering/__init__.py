"""What a person reads: templates, the views they see, packing into byte limits, escaping alert data."""
