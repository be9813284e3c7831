#!/usr/bin/env python3
"""Writes the phone golden file from Google's libphonenumber metadata.

The expectations come from `phonenumbers`, the Python port of Google's libphonenumber, used as
an outside oracle: casebridge's `Phone::parse` must agree with it on every case.

Run from the repository root (the next metadata update is this one command, with the new
version pinned here and in the install line):

    pip install 'phonenumbers==9.0.43'
    python3 scripts/phone_fixtures.py          # writes crates/rules/tests/fixtures/phone_numbers.json
    cargo test -p casebridge-rules --test phone_fixture

The file holds, in this order (each case names its `group`):
  - curated:   hand-picked spellings (separators, trunk 0, 00/IDD, extensions, vanity, errors);
  - brazil:    BR numbers whose area code is 55 (read as the country code by some parsers) and
               0900 numbers (whose "90" some parsers strip as a carrier code);
  - metadata:  numbers whose validity changed between metadata 9.0.33 and 9.0.43 (newer US
               area codes 274/472/983, ES/AU/DE ranges);
  - sweep:     every region's example number of every type the metadata has one for (and the
               non-geographic entities'), each in several spellings: E.164, international,
               national, national digits only, national with dots, RFC 3966, with an
               extension (national and RFC 3966), with the IDD prefix, and `+CC (0)...`.

Each case: input + region (the default region) -> e164 (null when unparseable, then `error` is
the NumberParseException type), valid, extension, national_digits (the national number without
Italian leading zeros, as libphonenumber's `national_number` field).
"""

import argparse
import json
import os
import sys

import phonenumbers as pn
from phonenumbers import PhoneMetadata, PhoneNumberFormat as Fmt, PhoneNumberType as Type

PINNED = "9.0.43"
OUT = os.path.join("crates", "rules", "tests", "fixtures", "phone_numbers.json")

# (input, default region): kept from the first hand-written fixture.
CURATED = [
    ("(415) 555-0100", "US"), ("415.555.0100", "US"), ("415/555/0100", "US"),
    ("+1 415 555 0100", "US"), ("1-415-555-0100", "US"), ("001 415 555 0100", "US"),
    ("4155550100", "US"), ("+14155550100", "US"), ("(212) 736-5000 x123", "US"),
    ("212-736-5000 ext. 45", "US"), ("+1 (212) 736 5000", "US"), ("212 736 5000;ext=9", "US"),
    ("1 800 FLOWERS", "US"), ("+1 800 356 9377", "US"), ("555-0100", "US"), ("0", "US"),
    ("anonymous", "US"), ("+", "US"), ("+999 123", "US"), ("", "US"),
    ("+44 20 7946 0958", "US"), ("020 7946 0958", "US"), ("tel:+1-201-555-0123", "US"),
    ("020 7946 0958", "GB"), ("+44 (0)20 7946 0958", "GB"), ("0044 20 7946 0958", "GB"),
    ("07700 900123", "GB"), ("+447700900123", "GB"), ("7946 0958", "GB"),
    ("030 1234567", "DE"), ("+49 30 1234567", "DE"), ("0049 (30) 123 4567", "DE"),
    ("0151 23456789", "DE"), ("030/1234567", "DE"), ("+49 (0)30 1234567", "DE"),
    ("01 23 45 67 89", "FR"), ("+33 1 23 45 67 89", "FR"), ("06 12 34 56 78", "FR"),
    ("0033 6 12 34 56 78", "FR"), ("912 345 678", "ES"), ("+34 912 34 56 78", "ES"),
    ("612 34 56 78", "ES"), ("0034 612345678", "ES"), ("(11) 91234-5678", "BR"),
    ("+55 11 91234-5678", "BR"), ("11 1234-5678", "BR"), ("011 91234 5678", "BR"),
    ("55 1234 5678", "MX"), ("+52 55 1234 5678", "MX"), ("+52 1 55 1234 5678", "MX"),
    ("044 55 1234 5678", "MX"), ("(02) 9876 5432", "AU"), ("+61 2 9876 5432", "AU"),
    ("0412 345 678", "AU"), ("8 (495) 123-45-67", "RU"), ("+7 495 123-45-67", "RU"),
    ("098765 43210", "IN"), ("+91 98765 43210", "IN"), ("+44 20 7946 0958", "DE"),
    ("+1 415 555 0100", "DE"), ("+49 30 1234567", "US"), ("0044 20 7946 0958", "US"),
    ("0044 20 7946 0958", "DE"), ("011 44 20 7946 0958", "US"), ("011 44 20 7946 0958", "DE"),
]

# Area code 55 (the country code's digits) and 0900 numbers, every spelling a caller may use.
BRAZIL = [
    "(55) 3222-1234", "55 3222 1234", "5532221234", "055 3222-1234", "+55 55 3222-1234",
    "+555532221234", "tel:+55-55-3222-1234",
    "(55) 99123-4567", "55 99123 4567", "5599123-4567", "+55 55 99123-4567", "+5555991234567",
    "0900 95 0293", "0900950293", "+55 900 95 0293", "+55900950293", "tel:+55-900-95-0293",
    "(21) 3222-1234", "(21) 99123-4567", "+55 21 99123-4567",
]

# Validity changed between metadata 9.0.33 and 9.0.43: found by running `+CC` + every 4-digit
# prefix + filler digits, at each possible length of the ten regions above, through the old
# parser and this oracle, and keeping a few of each region's disagreements.
METADATA = [
    ("(274) 555-0123", "US"), ("+1 274 212 3456", "US"), ("472-212-3456", "US"),
    ("+1 472 555 0199", "US"), ("983 212 3456", "US"), ("+19835550199", "US"),
    ("+12732234567", "US"), ("+12743234567", "US"), ("+19835234567", "US"),
    ("+34400023456", "ES"), ("400 52 34 56", "ES"), ("+34400923456", "ES"),
    ("+61496023456", "AU"), ("0496 323 456", "AU"), ("+6113002345", "AU"),
    ("+611346234567", "AU"), ("+61139923456789", "AU"),
    ("+494930234", "DE"), ("+4918552345678901", "DE"), ("+49497923456789012", "DE"),
    ("+554000234567", "BR"), ("+5554782345678", "BR"), ("+5599792345678", "BR"),
    ("+811200234567", "JP"), ("+8108002345678901", "JP"), ("+8112092345678901234", "JP"),
]

SWEEP_TYPES = [
    Type.FIXED_LINE, Type.MOBILE, Type.TOLL_FREE, Type.PREMIUM_RATE, Type.SHARED_COST,
    Type.VOIP, Type.PERSONAL_NUMBER, Type.PAGER, Type.UAN, Type.VOICEMAIL,
]


def expect(text, region, group):
    case = {"input": text, "region": region, "group": group}
    try:
        n = pn.parse(text, region)
    except pn.NumberParseException as e:
        case.update(e164=None, valid=False, extension=None, error=str(e.error_type))
        return case
    case.update(
        e164=pn.format_number(n, Fmt.E164),
        valid=pn.is_valid_number(n),
        extension=n.extension or None,
        national_digits=str(n.national_number),
    )
    return case


def idd_for(region):
    """The prefix dialed to leave `region`, when it is a plain digit string."""
    meta = PhoneMetadata.metadata_for_region(region)
    for prefix in (meta.preferred_international_prefix, meta.international_prefix):
        if prefix and prefix.isdigit():
            return prefix
    return None


def spellings(n, region):
    """(input, default region) pairs for one example number."""
    e164 = pn.format_number(n, Fmt.E164)
    intl = pn.format_number(n, Fmt.INTERNATIONAL)
    out = [(e164, region), (intl, region), (pn.format_number(n, Fmt.RFC3966), region)]
    if region == "001":  # non-geographic: no national form, dialed from anywhere
        return [(t, "US") for t, _ in out] + [("00" + e164[1:], "DE")]
    national = pn.format_number(n, Fmt.NATIONAL)
    out += [
        (national, region),
        ("".join(c for c in national if c.isdigit()), region),
        (national.replace(" ", ".").replace("-", "."), region),
    ]
    with_ext = pn.PhoneNumber(country_code=n.country_code, national_number=n.national_number,
                              italian_leading_zero=n.italian_leading_zero,
                              number_of_leading_zeros=n.number_of_leading_zeros, extension="123")
    out += [(pn.format_number(with_ext, Fmt.NATIONAL), region),
            (pn.format_number(with_ext, Fmt.RFC3966), region)]
    idd = idd_for(region)
    out.append((idd + " " + intl[1:], region) if idd else ("00 " + intl[1:], "DE"))
    prefix = PhoneMetadata.metadata_for_region(region).national_prefix
    cc = f"+{n.country_code} "
    if prefix and national.startswith(prefix) and intl.startswith(cc):
        out.append((f"{cc}({prefix}){intl[len(cc):]}", region))
    return out


def sweep():
    numbers = []
    for region in sorted(pn.SUPPORTED_REGIONS):
        for t in SWEEP_TYPES:
            n = pn.example_number_for_type(region, t)
            if n is not None:
                numbers.append((n, region))
    for cc in sorted(pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        n = pn.example_number_for_non_geo_entity(cc)
        if n is not None:
            numbers.append((n, "001"))
    return [pair for n, region in numbers for pair in spellings(n, region)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--any-version", action="store_true", help=f"do not insist on {PINNED}")
    args = ap.parse_args()
    if pn.__version__ != PINNED and not args.any_version:
        sys.exit(f"phonenumbers {pn.__version__} installed, {PINNED} pinned: "
                 f"pip install 'phonenumbers=={PINNED}' (or update PINNED)")
    groups = [("curated", CURATED), ("brazil", [(t, "BR") for t in BRAZIL]),
              ("metadata", METADATA), ("sweep", sweep())]
    seen, cases = set(), []
    for group, pairs in groups:
        for text, region in pairs:
            if (text, region) not in seen:
                seen.add((text, region))
                cases.append(expect(text, region, group))
    header = {
        "generated_by": f"python phonenumbers {pn.__version__} (port of Google libphonenumber)"
                        " via scripts/phone_fixtures.py",
        "fields": "input + region (default region) -> e164 (null when unparseable), valid, "
                  "extension, national_digits; group says why the case is here",
    }
    # One case a line: the file stays diffable when the metadata moves.
    lines = [json.dumps(c, ensure_ascii=False) for c in cases]
    body = json.dumps(header, indent=1, ensure_ascii=False)[:-2]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(body + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
    print(f"{len(cases)} cases written to {args.out}")


if __name__ == "__main__":
    main()
