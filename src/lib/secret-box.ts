import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'

/**
 * Secrets the service must be able to use again (a webhook's signing secret, a Slack URL), kept
 * encrypted at rest: AES-256-GCM, a random 96-bit IV per value, and the value's context (which
 * channel, which field) as additional authenticated data, so a stored ciphertext cannot be
 * moved to another item or field. Hashes are for secrets the service only compares (API keys).
 *
 * Stored form: `v1.<key id>.<iv>.<ciphertext>.<tag>` (base64url parts). The key id is the first
 * 8 hex digits of SHA-256 of the key: a value sealed under another key is recognised as such
 * (`SecretKeyMismatch`) rather than failing as tampered.
 */
export interface SecretBox {
  /** The id of the current key (stored with every value). */
  keyId: string
  seal: (plain: string, context: string) => string
  /** The plaintext; throws SecretKeyMismatch for a value of another key, SecretCorrupt otherwise. */
  open: (sealed: string, context: string) => string
}

export class SecretKeyMismatch extends Error { override name = 'SecretKeyMismatch' }
export class SecretCorrupt extends Error { override name = 'SecretCorrupt' }

const HKDF_INFO = 'notification-secrets'

/**
 * The key: `key` when configured (NOTIFICATION_KEY, 32 bytes), otherwise derived from the JWT
 * secret with HKDF-SHA256 (info `notification-secrets`). With the derived key, rotating the
 * JWT secret makes the stored secrets unreadable (docs/notifications.md: set NOTIFICATION_KEY).
 */
export function notificationKey (key: Buffer | undefined, jwtSecret: string): Buffer {
  if (key) {
    if (key.length !== 32) throw new Error('the notification key must be 32 bytes')
    return key
  }
  return Buffer.from(hkdfSync('sha256', Buffer.from(jwtSecret, 'utf8'), Buffer.alloc(0), HKDF_INFO, 32))
}

export function createSecretBox (key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('AES-256-GCM needs a 32-byte key')
  const keyId = createHash('sha256').update(key).digest('hex').slice(0, 8)
  return {
    keyId,
    seal (plain, context) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      cipher.setAAD(Buffer.from(context, 'utf8'))
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return ['v1', keyId, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.')
    },
    open (sealed, context) {
      const parts = sealed.split('.')
      if (parts.length !== 5 || parts[0] !== 'v1') throw new SecretCorrupt('not a sealed value')
      const [, kid, iv, body, tag] = parts as [string, string, string, string, string]
      if (kid !== keyId) throw new SecretKeyMismatch(`sealed under key ${kid}, the current key is ${keyId}`)
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
        decipher.setAAD(Buffer.from(context, 'utf8'))
        decipher.setAuthTag(Buffer.from(tag, 'base64url'))
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8')
      } catch {
        throw new SecretCorrupt('the sealed value does not authenticate')
      }
    }
  }
}
