# A user's own package named like this one (e.g. strategies.mine) merges into it.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
