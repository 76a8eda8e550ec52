"""A modern (2026-07-28) STDIO MCP server built with the official Python SDK,
so berth's legacy-client ↔ modern-server translation meets a real peer."""

from typing import Annotated

from pydantic import BaseModel

from mcp.server.mcpserver import Elicit, MCPServer, Resolve

mcp = MCPServer("berth-modern-test", instructions="A modern-era test server.")


class Name(BaseModel):
    name: str


def ask_for_name():
    return Elicit("What is your name?", Name)


@mcp.tool()
async def ask_name(who: Annotated[Name, Resolve(ask_for_name)]) -> str:
    """Ask the user's name (an InputRequiredResult in 2026-07-28) and greet them."""
    return f"hello {who.name}"


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@mcp.resource("test://modern/hello")
def hello() -> str:
    """A static greeting."""
    return "hello from a modern server"


@mcp.prompt()
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    mcp.run("stdio")
