import type { Role } from '../../../openapi/generated/schemas.js'
import { attr, entity, type ItemOf } from '../../db/entity.js'

/**
 * Table `<prefix>users`: one item per user.
 *
 * | access pattern          | key / index                                   |
 * | ----------------------- | --------------------------------------------- |
 * | getById                 | table: id                                     |
 * | getByEmail              | claim item `email#<email>` in the meta table (strongly consistent) |
 * | listAll (newest first)  | GSI `entity-id-index`: entity = 'user', id desc (ULIDs sort by time) |
 * | listByRole              | GSI `role-id-index`: role, id desc            |
 * | filters is_active/search | filter expressions (is_active; name_lc or email contains) on the pages read |
 * | active admins           | meta item `admins#active` (see users.repository.ts), ordered by `admin_epoch` |
 */
export const Users = entity('users', {
  id: attr.string().hashKey(),
  entity: attr.string<'user'>().required().gsi('entity-id-index', 'id'),
  email: attr.string().required(),
  name: attr.string().required(),
  role: attr.string<Role>().required().gsi('role-id-index', 'id'),
  is_active: attr.boolean().required(),
  must_change_password: attr.boolean().required(),
  password_hash: attr.string().required(),
  session_version: attr.number().required(),
  version: attr.number().required(),
  name_lc: attr.string().required(),
  created_at: attr.string().required(),
  updated_at: attr.string().required(),
  last_login_at: attr.string(),
  /** The end of a temporary password's lifetime (ISO 8601); absent when the password is not temporary. */
  temporary_password_expires_at: attr.string(),
  /** Bumped when the user joins or leaves the active admins; absent on older items (0). */
  admin_epoch: attr.number()
})

export type UserItem = ItemOf<typeof Users>
