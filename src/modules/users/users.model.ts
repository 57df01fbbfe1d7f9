import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

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
export interface UserItem extends Item {
  id: string
  entity: 'user'
  email: string
  name: string
  role: 'admin' | 'manager' | 'user'
  is_active: boolean
  must_change_password: boolean
  password_hash: string
  session_version: number
  version: number
  name_lc: string
  created_at: string
  updated_at: string
  last_login_at?: string
  /** The end of a temporary password's lifetime (ISO 8601); absent when the password is not temporary. */
  temporary_password_expires_at?: string
  /** Bumped when the user joins or leaves the active admins; absent on older items (0). */
  admin_epoch?: number
}

const schema = new dynamoose.Schema({
  id: { type: String, hashKey: true },
  entity: { type: String, index: { name: 'entity-id-index', type: 'global', rangeKey: 'id' } },
  email: { type: String, required: true },
  name: { type: String, required: true },
  role: { type: String, required: true, index: { name: 'role-id-index', type: 'global', rangeKey: 'id' } },
  is_active: { type: Boolean, required: true },
  must_change_password: { type: Boolean, required: true },
  password_hash: { type: String, required: true },
  session_version: { type: Number, required: true },
  version: { type: Number, required: true },
  name_lc: { type: String, required: true },
  created_at: { type: String, required: true },
  updated_at: { type: String, required: true },
  last_login_at: String,
  temporary_password_expires_at: String,
  admin_epoch: Number
})

export const defineUsersModel = (prefix: string) =>
  dynamoose.model<UserItem>(`${prefix}users`, schema, MODEL_OPTIONS)

export type UsersModel = ReturnType<typeof defineUsersModel>
