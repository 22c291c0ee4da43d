"""Exception types shared by the compatibility modules."""


class InputError(ValueError, RuntimeError):
    """Bad input (wrong shape, dimension or dtype).

    It is a ``ValueError``, as Python code expects, and also a
    ``RuntimeError``, which is what hnswlib and N2 raise in these cases, so
    ``except RuntimeError`` blocks written for them keep working.
    """


class LabelError(KeyError, RuntimeError):
    """A label or item id that is not in the index.

    A ``KeyError``, and a ``RuntimeError`` like hnswlib's "Label not found".
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
