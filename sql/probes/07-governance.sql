-- KB-2590 §7: governance handoff objects; handoff.object_born registered but inactive; OSPA rows.
SELECT jsonb_build_object(
  'objects', jsonb_build_object(
    'event_pending', to_regclass('event_pending') IS NOT NULL,
    'event_type_registry', to_regclass('event_type_registry') IS NOT NULL,
    'governance_candidate_state', to_regclass('governance_candidate_state') IS NOT NULL,
    'governance_build_authorization', to_regclass('governance_build_authorization') IS NOT NULL,
    'registry_changelog', to_regclass('registry_changelog') IS NOT NULL),
  'handoffObjectBorn', (SELECT jsonb_build_object('active', e.active, 'domain', e.domain, 'lane', e.lane)
                          FROM event_type_registry e WHERE e.event_type = 'handoff.object_born'),
  'ospaRows', (SELECT count(*) FROM governance_build_authorization),
  'changelogRows', (SELECT count(*) FROM registry_changelog),
  'eventPendingRows', (SELECT count(*) FROM event_pending),
  'candidateRows', (SELECT count(*) FROM governance_candidate_state)
) AS doc;
