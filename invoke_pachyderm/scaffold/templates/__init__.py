"""Template files shipped with invoke-pachyderm (read with importlib.resources; no code here).

``project/`` is what ``invoke-pachyderm init`` writes. File names are mapped on write:
``dot-x`` -> ``.x`` (setuptools drops dotfiles from package data), a ``__module__`` path
part -> the project's Python module name, and a trailing ``.tmpl`` is removed (it keeps
template sources that are not valid Python out of byte-compilation and test collection).
``%%key%%`` placeholders are filled in by ``invoke_pachyderm.scaffold.writer``.
"""
