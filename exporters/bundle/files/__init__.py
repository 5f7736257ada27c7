"""Entry points copied verbatim into deploy bundles (they import `bundle_runtime`, which is
exporters/bundle/runtime.py under the name it has inside a bundle)."""
