"""Placeholders for torchvision callables: importable, but using one is an error."""


def unavailable(qualname):
    class Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("%s is not available: torchvision is a stub in the contract-test venv" % qualname)

    Unavailable.__name__ = Unavailable.__qualname__ = qualname.rsplit(".", 1)[-1]
    return Unavailable


def module_getattr(module_name):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return unavailable("%s.%s" % (module_name, name))

    return __getattr__
