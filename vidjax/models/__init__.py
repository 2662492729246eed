"""Model families; importing this package registers every model by name."""
from vidjax.models import single_frame, vivit  # noqa: F401
