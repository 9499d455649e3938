-- Every source record belongs to exactly one person.
select source, source_record_id, count(*) as n
from {{ ref('identity_map') }}
group by 1, 2
having count(*) > 1
