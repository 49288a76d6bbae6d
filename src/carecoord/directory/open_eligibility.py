"""Open Eligibility human-services terms -> Gravity SDOH domains (built-in taxonomy map entries).

Source: the Open Eligibility taxonomy v2.0 published by its authors, Aunt Bertha (now findhelp),
at github.com/auntbertha/openeligibility, file `taxonomy` (commit 972004b, "Updates for v.2.0.0"
after the fix "Fix incorrect IDs for Food category"; CC BY-SA 3.0). Each id below is that file's
`id` attribute with the title it carries there. Only terms whose service plainly addresses one
Gravity domain are mapped; the rest (health care, goods, legal, care, education, work, and e.g.
Maintenance & Repairs, Nursing Home, Safe Housing) stay unmapped and are reported as such in
the import summary: map them in configuration where a directory uses them for a domain.

The ids are bare numbers, so they apply only to terms of the Open Eligibility taxonomy: the
keys are "open-eligibility|<id>", which match a term whose `taxonomy` is "Open Eligibility",
"open_eligibility", "openeligibility" ... (taxonomy names compare without case and punctuation,
carecoord.directory.taxonomy).
"""

from __future__ import annotations

TAXONOMY = "open-eligibility"

# id -> (title in the taxonomy file, Gravity domain)
TERMS: dict[str, tuple[str, str]] = {
    # Food (1102) and its terms; the same services under Emergency and Money.
    "1102": ("Food", "food-insecurity"),
    "1127": ("Community Gardens", "food-insecurity"),
    "1128": ("Emergency Food", "food-insecurity"),
    "1129": ("Food Delivery", "food-insecurity"),
    "1130": ("Food Pantry", "food-insecurity"),
    "1131": ("Free Meals", "food-insecurity"),
    "1132": ("Help Pay for Food", "food-insecurity"),
    "1133": ("Food Benefits", "food-insecurity"),
    "1134": ("Nutrition", "food-insecurity"),
    "1114": ("Help Pay for Food", "food-insecurity"),  # Emergency > Emergency Payments
    "1120": ("Emergency Food", "food-insecurity"),  # Emergency
    "1234": ("Help Pay for Food", "food-insecurity"),  # Money > Financial Assistance
    "1235": ("Food Benefits", "food-insecurity"),
    "1258": ("Food Benefits", "food-insecurity"),  # Money > Government Benefits
    # Housing (1103): finding, paying for and keeping housing.
    "1103": ("Housing", "housing-instability"),
    "1136": ("Help Find Housing", "housing-instability"),
    "1137": ("Help Pay for Housing", "housing-instability"),
    "1140": ("Housing Vouchers", "housing-instability"),
    "1142": ("Housing Advice", "housing-instability"),
    "1143": ("Foreclosure Counseling", "housing-instability"),
    "1150": ("Public Housing", "housing-instability"),
    "1116": ("Help Pay for Housing", "housing-instability"),  # Emergency > Emergency Payments
    "1243": ("Help Pay for Housing", "housing-instability"),  # Money > Financial Assistance
    "1295": ("Help Find Housing", "housing-instability"),  # Care > Navigating the System
    # Shelter for people without a home.
    "1135": ("Emergency Shelter", "homelessness"),  # Housing
    "1121": ("Emergency Shelter", "homelessness"),  # Emergency
    # Utilities.
    "1138": ("Help Pay for Utilities", "utility-insecurity"),  # Housing > Help Pay for Housing
    "1119": ("Help Pay for Utilities", "utility-insecurity"),  # Emergency > Emergency Payments
    "1244": ("Help Pay for Utilities", "utility-insecurity"),  # Money > ... > Help Pay for Housing
    # Transit (1105) and its terms; the same under Health, Money and Emergency.
    "1105": ("Transit", "transportation-insecurity"),
    "1172": ("Help Pay for Transit", "transportation-insecurity"),
    "1173": ("Bus Passes", "transportation-insecurity"),
    "1174": ("Help Pay for Gas", "transportation-insecurity"),
    "1175": ("Transportation", "transportation-insecurity"),
    "1176": ("Transportation for Healthcare", "transportation-insecurity"),
    "1177": ("Transportation for School", "transportation-insecurity"),
    "1117": ("Help Pay for Gas", "transportation-insecurity"),  # Emergency > Emergency Payments
    "1205": ("Transportation for Healthcare", "transportation-insecurity"),  # Health > Help Pay
    "1242": ("Transportation for Healthcare", "transportation-insecurity"),  # Money > ... Health
    "1252": ("Help Pay for Transit", "transportation-insecurity"),  # Money > Financial Assistance
    "1253": ("Help Pay for Gas", "transportation-insecurity"),
    "1254": ("Bus Passes", "transportation-insecurity"),
    # Money in general.
    "1107": ("Money", "financial-insecurity"),
    "1113": ("Emergency Payments", "financial-insecurity"),
    "1232": ("Financial Assistance", "financial-insecurity"),
}


def taxonomy_map_entries() -> dict[str, str]:
    """The built-in taxonomy map entries: "open-eligibility|<id>" -> domain."""
    return {f"{TAXONOMY}|{code}": domain for code, (_, domain) in TERMS.items()}
