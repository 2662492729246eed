"""User-facing errors: one clear line, no stack trace from inside a library."""


class VidjaxError(Exception):
  """An error caused by the user's input (config, data, checkpoint, workdir).

  `vidjax.main` prints its message as one line and exits with status 1.
  The message must name the config key, file or parameter at fault.
  """
