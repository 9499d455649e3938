"""Pairwise precision and recall of identity resolution against ground truth.

Two records form a true pair when the truth gives them the same person, a predicted pair when
``marts.identity_map`` gives them the same customer_id. Records the truth assigns to no person
(anonymous devices, walk-in receipts) and records that never reached the map (quarantined) are
left out; their counts are reported.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def pairwise_scores(con: duckdb.DuckDBPyConnection, truth_csv: Path) -> dict:
    con.execute(
        f"""
        create or replace temp table _truth as
        select source, source_record_id, nullif(person_id, '') as person_id
        from read_csv('{truth_csv}', header = true, all_varchar = true)
        """
    )
    con.execute(
        """
        create or replace temp table _evaluated as
        select t.source, t.source_record_id, t.person_id, m.customer_id
        from _truth t join marts.identity_map m using (source, source_record_id)
        where t.person_id is not null
        """
    )
    pairs = con.execute(
        """
        with cells as (select person_id, customer_id, count(*) as n from _evaluated group by all),
        persons as (select person_id, count(*) as n from _evaluated group by all),
        customers as (select customer_id, count(*) as n from _evaluated group by all)
        select
            (select coalesce(sum(n * (n - 1) / 2), 0) from cells) as true_positive_pairs,
            (select coalesce(sum(n * (n - 1) / 2), 0) from customers) as predicted_pairs,
            (select coalesce(sum(n * (n - 1) / 2), 0) from persons) as true_pairs
        """
    ).fetchone()
    tp, predicted, true = (int(x) for x in pairs)
    by_source = con.execute(
        """
        select t.source,
               count(*) as truth_records,
               count(*) filter (where t.person_id is null) as anonymous,
               count(m.customer_id) filter (where t.person_id is not null) as evaluated,
               count(*) filter (where t.person_id is not null and m.customer_id is null) as not_in_map
        from _truth t left join marts.identity_map m using (source, source_record_id)
        group by 1 order by 1
        """
    ).fetchall()
    persons, customers = con.execute(
        "select count(distinct person_id), count(distinct customer_id) from _evaluated"
    ).fetchone()
    return {
        "precision": tp / predicted if predicted else 1.0,
        "recall": tp / true if true else 1.0,
        "true_positive_pairs": tp,
        "predicted_pairs": predicted,
        "true_pairs": true,
        "persons": persons,
        "customers": customers,
        "by_source": [
            dict(zip(("source", "truth_records", "anonymous", "evaluated", "not_in_map"), row)) for row in by_source
        ],
    }
