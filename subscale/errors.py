"""The one exception type for bad user input."""


class SubscaleError(ValueError):
    """A file, folder, config field or array given by the user is unusable.

    The message is one line that names the file or field and says what is wrong,
    so the command line can print it without a traceback.
    """
