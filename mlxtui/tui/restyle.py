"""Restyle one node, not its whole subtree, for classes and focus that style only that node.

When a node's classes or focus change, Textual applies the stylesheet again to the node and to
every descendant (it cannot know that no rule of a descendant depends on them). A pane holding
the Config form has about 290 descendants, so lighting its border up on a key press restyled
them all, twice (the pane left and the pane entered). The pane's `-active` class and `:focus`
pseudo-class are matched by rules on the pane alone (app.tcss: `.pane.-active`, `.pane:focus`,
`Screen.-compact .pane.-active`): restyling the pane itself is enough.
"""

from __future__ import annotations

from textual.dom import DOMNode


def restyle_alone(node: DOMNode) -> None:
    """Apply the stylesheet to `node` only (its descendants keep the styles they have)."""
    node.app.stylesheet.update_nodes([node], animate=True)


def set_own_class(node: DOMNode, add: bool, name: str) -> None:
    """`node.set_class(add, name)` for a class that no rule of a descendant mentions."""
    if node.has_class(name) == add:
        return
    node.set_class(add, name, update=False)
    if node.is_attached:
        restyle_alone(node)
