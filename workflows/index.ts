// Every workflow the admission worker runs (the bundler's entry point).
export { dotBirthAdmit, dotBirthAdmitLocal } from './dot-birth-admit.ts';
export { dotBirthRollback } from './dot-birth-rollback.ts';
