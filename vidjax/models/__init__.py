"""Model families; importing this package registers every model by name."""
from vidjax.models import single_frame, vivit  # noqa: F401
from vidjax.models import c3d, resnet3d  # noqa: F401
from vidjax.models import resnet_video, slowfast, tsm  # noqa: F401
from vidjax.models import timesformer, vivit_factorized_attention  # noqa: F401
from vidjax.models import fusion, slow_fusion, two_stream, recurrent  # noqa: F401
from vidjax.models import videomae  # noqa: F401
from vidjax.models import vit  # noqa: F401
from vidjax.models import inception  # noqa: F401
from vidjax.models import mvit  # noqa: F401
from vidjax.models import x3d  # noqa: F401
from vidjax.models import separation  # noqa: F401
from vidjax.models import audio_visual, av_sync  # noqa: F401
from vidjax.models import movinet  # noqa: F401
