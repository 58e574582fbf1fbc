"""An example model package for hsta-bench: its models register on import (my_mer_model.models)."""
