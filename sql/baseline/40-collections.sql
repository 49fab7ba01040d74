-- The rest of the estate: 70 ordinary code-keyed collections of one shape. With the 6 named
-- code-keyed families they make 76 tables × (trg_birth_<t> AFTER INSERT + trg_birth_upd_<t> AFTER
-- UPDATE OF code) = 152 bindings, plus 14 legacy duplicates birth_trigger_<t> (dot_tools and 13 here)
-- = the 166 triggers calling fn_birth_registry_auto (KB-2590 §4). 12 of them carry the advisory gate,
-- which with dot_tools, entity_species, pivot_definitions and collection_registry makes the 16 tables
-- behind fn_birth_gate (KB-4410 §A) — a hardcoded list, as found (KB-4410 §A "the 16/166-table lists
-- are hardcoded"). The list is data here so the shape stays one statement.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT * FROM (VALUES
      -- name,               prefix, gated, legacy duplicate birth trigger, criticality
      ('kb_articles',         'KBA', true,  false, 'standard'),
      ('kb_sections',         'KBS', false, false, 'standard'),
      ('knowledge_atoms',     'KAT', true,  false, 'standard'),
      ('knowledge_documents', 'KDO', false, true,  'standard'),
      ('knowledge_sources',   'KSR', false, false, 'standard'),
      ('glossary_terms',      'GLT', false, true,  'standard'),
      ('taxonomy_nodes',      'TXN', false, true,  'standard'),
      ('tags',                'TAG', false, true,  'standard'),
      ('laws',                'LAW', true,  false, 'critical'),
      ('law_articles',        'LAR', true,  false, 'critical'),
      ('law_clauses',         'LCL', false, false, 'critical'),
      ('policies',            'POL', true,  false, 'critical'),
      ('rules',               'RUL', false, true,  'standard'),
      ('rule_sets',           'RST', false, false, 'standard'),
      ('decisions',           'DEC', true,  false, 'critical'),
      ('decision_options',    'DOP', false, false, 'standard'),
      ('checkpoints',         'CKP', true,  false, 'standard'),
      ('reports',             'RPT', true,  false, 'standard'),
      ('report_sections',     'RSE', false, false, 'standard'),
      ('projects',            'PRJ', false, false, 'standard'),
      ('milestones',          'MST', false, false, 'standard'),
      ('tasks',               'TSK', false, true,  'standard'),
      ('task_templates',      'TTP', false, false, 'standard'),
      ('workflows_catalog',   'WFC', false, false, 'standard'),
      ('workflow_steps',      'WFS', false, true,  'standard'),
      ('agents',              'AGT', true,  false, 'standard'),
      ('agent_skills',        'AGS', false, false, 'standard'),
      ('agent_profiles',      'AGP', false, false, 'standard'),
      ('personas',            'PER', false, false, 'standard'),
      ('prompts',             'PRM', true,  false, 'standard'),
      ('prompt_versions',     'PRV', false, false, 'standard'),
      ('datasets',            'DST', false, true,  'standard'),
      ('data_sources',        'DSR', false, false, 'standard'),
      ('metrics',             'MET', false, true,  'standard'),
      ('kpis',                'KPI', false, false, 'standard'),
      ('dashboards',          'DSH', false, false, 'standard'),
      ('widgets',             'WDG', false, true,  'standard'),
      ('ui_pages',            'UIP', false, false, 'standard'),
      ('ui_sections',         'UIS', false, false, 'standard'),
      ('ui_blocks',           'UIB', false, false, 'standard'),
      ('forms',               'FRM', false, false, 'standard'),
      ('form_fields',         'FFD', false, false, 'standard'),
      ('api_endpoints',       'API', false, false, 'standard'),
      ('services',            'SVC', false, false, 'standard'),
      ('modules',             'MOD', false, false, 'standard'),
      ('components',          'CMP', false, false, 'standard'),
      ('features',            'FEA', false, true,  'standard'),
      ('requirements',        'REQ', false, false, 'standard'),
      ('test_cases',          'TCS', false, false, 'standard'),
      ('test_suites',         'TSU', false, false, 'standard'),
      ('incidents',           'INC', false, false, 'standard'),
      ('change_requests',     'CHG', false, false, 'standard'),
      ('releases',            'REL', false, false, 'standard'),
      ('environments',        'ENV', false, false, 'standard'),
      ('servers',             'SRV', false, false, 'standard'),
      ('containers',          'CNT', false, false, 'standard'),
      ('repositories',        'RPO', false, false, 'standard'),
      ('documents',           'DOC', false, true,  'standard'),
      ('document_versions',   'DVR', false, false, 'standard'),
      ('contracts',           'CTR', false, false, 'standard'),
      ('vendors',             'VND', false, true,  'standard'),
      ('templates',           'TPL', true,  false, 'standard'),
      ('notifications',       'NTF', false, false, 'standard'),
      ('channels',            'CHN', false, false, 'standard'),
      ('schedules',           'SCH', false, false, 'standard'),
      ('runbooks',            'RBK', true,  false, 'standard'),
      ('playbooks',           'PBK', false, false, 'standard'),
      ('iu_templates',        'IUT', false, false, 'standard'),
      ('dot_packages',        'DPK', false, false, 'standard'),
      ('pivot_catalog',       'PVC', false, false, 'standard')
    ) AS v(name, prefix, gated, dup, criticality)
  LOOP
    EXECUTE format($ddl$
      CREATE TABLE %1$I (
        id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        code         varchar,
        name         varchar,
        status       varchar NOT NULL DEFAULT 'active',
        species_code varchar,
        _dot_origin  varchar,
        payload      jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz,
        CONSTRAINT %2$I UNIQUE (code)
      )$ddl$, c.name, c.name || '_code_key');
    IF c.gated THEN
      EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION fn_birth_gate()',
                     'trg_before_birth_gate_' || c.name, c.name);
    END IF;
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION fn_set_updated_at()',
                   'trg_updated_at_' || c.name, c.name);
    IF c.dup THEN
      EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto(%L)',
                     'birth_trigger_' || c.name, c.name, 'code');
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto(%L)',
                   'trg_birth_' || c.name, c.name, 'code');
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF code ON %I FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto(%L)',
                   'trg_birth_upd_' || c.name, c.name, 'code');

    INSERT INTO meta_catalog (collection_name, birth_mode, code_field, name_field, status_field, code_prefix,
                              criticality, default_species, composition_level, governance_role, description, _dot_origin)
    VALUES (c.name, 'code', 'code', 'name', 'status', c.prefix, c.criticality,
            format('sp-%s-0001', replace(c.name, '_', '-')), 'entity',
            CASE WHEN c.gated OR c.criticality = 'critical' THEN 'governed' ELSE 'observed' END,
            replace(c.name, '_', ' '), 'dot-dot-register');
  END LOOP;
END
$$;
