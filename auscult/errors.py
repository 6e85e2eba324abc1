"""The one error type a person has to act on."""


class InputError(Exception):
    """A problem the person running auscult must fix: a missing or unreadable source, a bad parameter, too
    little data. The message names what is wrong and says what to do; running again unchanged fails the same
    way, so nothing retries it."""
