{# Data classification is part of a model's contract (docs/PRIVACY.md): every column of every
   model declares meta.classification = public | internal | sensitive in the model's YAML, and
   the YAML lists exactly the columns the model produces. Both are checked on every build:
   `assert_columns_classified` (on-run-start, before anything is built) and
   `assert_columns_documented` (on-run-end, against the relations just built). #}

{% macro classification_classes() -%}
    {{ return(['public', 'internal', 'sensitive']) }}
{%- endmacro %}

{% macro _column_classification(column) -%}
    {%- set meta = column.get('meta') or {} -%}
    {%- set config_meta = (column.get('config') or {}).get('meta') or {} -%}
    {{ return(meta.get('classification') or config_meta.get('classification')) }}
{%- endmacro %}

{% macro assert_columns_classified() %}
    {% if execute %}
        {% set classes = classification_classes() %}
        {% set problems = [] %}
        {% for node in graph.nodes.values() | sort(attribute='unique_id') %}
            {% if node.resource_type == 'model' and node.config.get('enabled', true) and node.config.get('materialized') != 'ephemeral' %}
                {% if node.columns | length == 0 %}
                    {% do problems.append("model '" ~ node.name ~ "' (" ~ node.original_file_path ~ ") documents no columns: add a YAML entry listing each column with meta: {classification: public|internal|sensitive}") %}
                {% endif %}
                {% for name, column in node.columns.items() %}
                    {% set cls = _column_classification(column) %}
                    {% if not cls %}
                        {% do problems.append("model '" ~ node.name ~ "' column '" ~ name ~ "' has no meta.classification (add meta: {classification: public|internal|sensitive} to its YAML)") %}
                    {% elif cls not in classes %}
                        {% do problems.append("model '" ~ node.name ~ "' column '" ~ name ~ "' has classification '" ~ cls ~ "', expected one of " ~ classes | join(', ')) %}
                    {% endif %}
                {% endfor %}
            {% endif %}
        {% endfor %}
        {% if problems %}
            {{ exceptions.raise_compiler_error("Unclassified columns (see docs/PRIVACY.md, 'Classification'):\n  - " ~ problems | join("\n  - ")) }}
        {% endif %}
    {% endif %}
    select 1
{% endmacro %}

{% macro assert_columns_documented(results) %}
    {% if execute %}
        {% set problems = [] %}
        {% for result in results %}
            {% set node = result.node %}
            {% if node.resource_type == 'model' and result.status == 'success' and node.config.get('materialized') != 'ephemeral' %}
                {% set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) %}
                {% if relation is not none %}
                    {% set documented = {} %}
                    {% for name in node.columns.keys() %}{% do documented.update({name | lower: name}) %}{% endfor %}
                    {% set produced = [] %}
                    {% for column in adapter.get_columns_in_relation(relation) %}
                        {% do produced.append(column.name | lower) %}
                        {% if (column.name | lower) not in documented %}
                            {% do problems.append("model '" ~ node.name ~ "' produces column '" ~ column.name ~ "' that its YAML does not document: add it with meta: {classification: public|internal|sensitive}") %}
                        {% endif %}
                    {% endfor %}
                    {% for key, name in documented.items() %}
                        {% if key not in produced %}
                            {% do problems.append("model '" ~ node.name ~ "' documents column '" ~ name ~ "' that it does not produce: remove it from its YAML") %}
                        {% endif %}
                    {% endfor %}
                {% endif %}
            {% endif %}
        {% endfor %}
        {% if problems %}
            {{ exceptions.raise_compiler_error("Model columns and their YAML disagree (see docs/PRIVACY.md, 'Classification'):\n  - " ~ problems | join("\n  - ")) }}
        {% endif %}
    {% endif %}
    select 1
{% endmacro %}
