"""Storefront: category pages are rendered to HTML by hand, row by row, on every request.

Fault: rendering a category costs a few milliseconds of Python on the event loop; under a
steady stream of shoppers the loop never rests, though no single page is slow.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from tests.scenarios.spec import Scenario, load

SCENARIO = Scenario(
    calls=(load("/categories/shoes", clients=4, seconds=5.0),), loop="uvloop", watch=8.0
)

router = APIRouter(prefix="/categories")
PRODUCTS = [
    {"sku": f"sku-{n}", "name": f"Product {n}", "price": n * 1.25, "stock": n % 7}
    for n in range(3000)
]


class ListingRenderer:
    def __init__(self, currency: str) -> None:
        self.currency = currency

    def row(self, product: dict[str, object]) -> str:
        return f"<tr><td>{product['name']}</td><td>{product['price']:.2f} {self.currency}</td></tr>"

    def page(self, category: str) -> str:
        rows = [self.row(p) for p in PRODUCTS if p["stock"]]  # bug: loop-saturated
        return f"<h1>{category}</h1><table>{''.join(rows)}</table>"


@router.get("/{category}", response_class=HTMLResponse)
async def category_page(category: str) -> str:
    return ListingRenderer("EUR").page(category)


app = FastAPI()
app.include_router(router)
