"""Where progress bars and callback messages go: standard output while interactive logging is
on (the default), else Python's logging (the "densitron" logger, at INFO), as Keras's
config.disable_interactive_logging() sends them to its log instead of the terminal."""

import sys

_interactive = [True]


def enable_interactive_logging():
    """Progress bars and messages to standard output (the default)."""
    _interactive[0] = True


def disable_interactive_logging():
    """Progress bars (one line an epoch) and messages to the "densitron" logger at INFO."""
    _interactive[0] = False


def is_interactive_logging_enabled():
    return _interactive[0]


def print_msg(message, line_break=True):
    """One message: written to standard output, or logged when interactive logging is off."""
    if _interactive[0]:
        sys.stdout.write(message + "\n" if line_break else message)
        sys.stdout.flush()
    else:
        import logging

        logging.getLogger("densitron").info(message)
